-- Appends conversion events at the tenant's next positions, in one round trip: the head row
-- moves past them (its row lock, held until COMMIT, keeps position order commit order), the
-- events take the positions in the order given, and listeners are told when (and only if)
-- the transaction commits. Data-modifying CTEs run whether or not the result reads them.
-- $1 tenant; $2 event types; $3 awards (JSON text); $4 the notification channel.
with head as (
    insert into outbox_heads as h (tenant_id, last_position)
    values ($1, cardinality($2::smallint[]))
    on conflict (tenant_id) do update set last_position = h.last_position + excluded.last_position
    returning last_position
),
appended as (
    insert into conversion_events (tenant_id, position, event_type, award)
    select $1, head.last_position - cardinality($2::smallint[]) + e.n, e.event_type, e.award::jsonb
    from head, unnest($2::smallint[], $3::text[]) with ordinality as e(event_type, award, n)
)
select pg_notify($4, $1)
