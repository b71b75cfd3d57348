-- +goose Up
-- go-dbkit stored expire_at in units of 100 microseconds since the epoch; distrlock uses microseconds.
UPDATE `distributed_locks` SET expire_at = expire_at * 100 WHERE expire_at IS NOT NULL;
-- +goose Down
UPDATE `distributed_locks` SET expire_at = expire_at DIV 100 WHERE expire_at IS NOT NULL;
