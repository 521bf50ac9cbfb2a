-- Whose parcel each is (absent for parcels made before it was kept): a
-- customer's data is exported and erased parcel by parcel.
ALTER TABLE shipments ADD COLUMN customer_id TEXT;
CREATE INDEX shipments_customer_idx ON shipments (customer_id, created_at);
