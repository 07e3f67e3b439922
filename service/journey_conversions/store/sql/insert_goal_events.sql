-- Inserts goal events idempotently: an event is written only when its id is new to
-- goal_event_ids (migration 0006). Returns the ids written; with the first, it locks the
-- contacts (migration 0009) for the re-decision that follows. Locking after the insert is
-- safe: what a re-decision reads, it reads in later statements, once the lock is held; and a
-- touchpoint written meanwhile under the lock either sees this event committed, or commits
-- before the re-decision reads.
-- $1 tenant; $2.. the columns, one array each; product lists joined by a unit separator.
with fresh as (
    insert into goal_event_ids (tenant_id, event_id, contact_id, occur_time)
    select $1, e, c, o from unnest($2::text[], $3::text[], $5::timestamptz[]) as x(e, c, o)
    on conflict (tenant_id, event_id) do nothing
    returning event_id
)
insert into goal_events (tenant_id, event_id, contact_id, event_type, occur_time, attribute_name,
    attribute_value, list_id, message_id, url, form_id, product_ids, value_currency, value_micros,
    amends_event_id)
select $1, e, c, t, o, an, av, l, m, u, f, coalesce(string_to_array(p, chr(31)), '{}'::text[]),
    vc, vm, am
from unnest($2::text[], $3::text[], $4::smallint[], $5::timestamptz[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[],
    $15::text[]) as x(e, c, t, o, an, av, l, m, u, f, p, vc, vm, am)
where x.e in (select event_id from fresh)
returning event_id, (select lock_contacts($1, $3::text[])) as locked
