-- One database and one role per service: a service can reach only its own data.
-- Passwords here are for the single-host compose form; Kubernetes takes them from
-- per-service Secrets (deploy/k8s).
CREATE ROLE warranty LOGIN PASSWORD 'warranty';
CREATE ROLE repair LOGIN PASSWORD 'repair';
CREATE ROLE logistics LOGIN PASSWORD 'logistics';
CREATE ROLE notification LOGIN PASSWORD 'notification';
CREATE DATABASE warranty OWNER warranty;
CREATE DATABASE repair OWNER repair;
CREATE DATABASE logistics OWNER logistics;
CREATE DATABASE notification OWNER notification;
REVOKE ALL ON DATABASE warranty, repair, logistics, notification FROM PUBLIC;
