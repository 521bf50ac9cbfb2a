-- Whose email or phone an address is, for sending a sign-in code: by the SHA-256
-- of the address as `sign_in_address` normalises it, so the table holds no
-- address in the clear. An address two customers share signs neither in.
CREATE TABLE sign_in_addresses (
    address_digest  TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    PRIMARY KEY (address_digest, customer_id)
);

CREATE INDEX sign_in_addresses_customer_idx ON sign_in_addresses (customer_id);
