-- The day a walk-in was booked for, when not the day it was opened; a
-- center's capacity is counted per visit day.
ALTER TABLE repair_orders ADD COLUMN visit_on TEXT;

CREATE INDEX repair_orders_visit_idx ON repair_orders (center_id, visit_on);
