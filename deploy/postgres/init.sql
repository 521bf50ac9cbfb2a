-- One database per service, and two roles for each: its owner, which runs the
-- migrations (DATABASE_OWNER_URL), and the role the service runs as (DATABASE_URL),
-- which the owner grants at each start what a service needs and no more: it can
-- append to and read its log but not change, delete or truncate an event, nor drop
-- the triggers that guard them. Passwords here are for the single-host compose
-- form; Kubernetes takes them from per-service Secrets (deploy/k8s).
CREATE ROLE warranty_owner LOGIN PASSWORD 'warranty_owner';
CREATE ROLE repair_owner LOGIN PASSWORD 'repair_owner';
CREATE ROLE logistics_owner LOGIN PASSWORD 'logistics_owner';
CREATE ROLE notification_owner LOGIN PASSWORD 'notification_owner';
CREATE ROLE parts_owner LOGIN PASSWORD 'parts_owner';
CREATE ROLE support_owner LOGIN PASSWORD 'support_owner';
CREATE ROLE warranty LOGIN PASSWORD 'warranty';
CREATE ROLE repair LOGIN PASSWORD 'repair';
CREATE ROLE logistics LOGIN PASSWORD 'logistics';
CREATE ROLE notification LOGIN PASSWORD 'notification';
CREATE ROLE parts LOGIN PASSWORD 'parts';
CREATE ROLE support LOGIN PASSWORD 'support';
CREATE DATABASE warranty OWNER warranty_owner;
CREATE DATABASE repair OWNER repair_owner;
CREATE DATABASE logistics OWNER logistics_owner;
CREATE DATABASE notification OWNER notification_owner;
CREATE DATABASE parts OWNER parts_owner;
CREATE DATABASE support OWNER support_owner;
REVOKE ALL ON DATABASE warranty, repair, logistics, notification, parts, support FROM PUBLIC;
GRANT CONNECT ON DATABASE warranty TO warranty;
GRANT CONNECT ON DATABASE repair TO repair;
GRANT CONNECT ON DATABASE logistics TO logistics;
GRANT CONNECT ON DATABASE notification TO notification;
GRANT CONNECT ON DATABASE parts TO parts;
GRANT CONNECT ON DATABASE support TO support;

-- The region's keyring: every service's data keys for personal data (wrapped by
-- the key-encryption key), one database all services reach; deleting a row
-- erases what that key sealed.
CREATE ROLE keyring LOGIN PASSWORD 'keyring';
CREATE DATABASE keyring OWNER keyring;
REVOKE ALL ON DATABASE keyring FROM PUBLIC;
