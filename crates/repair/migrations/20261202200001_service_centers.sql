-- Service centers as every replica serves them: the newest upsert of each center
-- (CenterDirectory in crates/repair/src/projections.rs). A built-in center that was
-- never changed through the API is not here; it comes from centers.toml.
CREATE TABLE service_centers (
    center_id  TEXT PRIMARY KEY,
    -- The center as JSON.
    center     TEXT NOT NULL,
    -- Log position of the upsert shown; an older one never overwrites it.
    position   BIGINT NOT NULL
);
