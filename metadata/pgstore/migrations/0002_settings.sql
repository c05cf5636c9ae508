-- Instance settings: the signing secret that replicas share (metadata.Store.SigningKey).
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
