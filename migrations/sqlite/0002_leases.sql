-- Named leases: singleton jobs among several picket processes (one planner at a time).
-- A lease is held until `until`; a crashed holder's lease simply runs out.
CREATE TABLE leases (
    name  TEXT    PRIMARY KEY,
    owner TEXT    NOT NULL,
    until INTEGER NOT NULL
);
