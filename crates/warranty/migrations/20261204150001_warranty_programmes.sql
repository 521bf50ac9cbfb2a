-- Devices in each recall or service programme: when the owner was told, and when
-- a repair under it was claimed (crates/warranty/src/projections.rs). The sweep
-- that tells owners of devices registered before a programme began looks for a
-- model's devices without a row here.
CREATE TABLE warranty_programme_devices (
    programme_id  TEXT NOT NULL,
    stream_id     TEXT NOT NULL,
    enrolled_on   TEXT,
    remedied_on   TEXT,
    PRIMARY KEY (programme_id, stream_id)
);

CREATE INDEX warranty_devices_by_model ON warranty_devices (model, stream_id);
