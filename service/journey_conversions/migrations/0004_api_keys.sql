-- API keys: the tenant a caller acts for comes from its key. Only a salted scrypt hash of each
-- key's secret is kept (keys.py); a revoked key keeps its row, with the time it was revoked.
create table api_keys (
    tenant_id text not null,
    key_id text not null,
    name text not null default '',
    scope smallint not null,
    salt bytea not null,
    secret_hash bytea not null,
    create_time timestamptz not null default now(),
    revoke_time timestamptz,
    primary key (tenant_id, key_id)
);
-- A presented key names its id, not its tenant.
create index api_keys_by_id on api_keys (key_id);
