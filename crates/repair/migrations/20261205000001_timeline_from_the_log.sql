-- An order's timeline is folded from its own stream when asked for, so it is
-- as current as the order; the projected copy could lag a step behind.
DROP TABLE repair_timeline;
