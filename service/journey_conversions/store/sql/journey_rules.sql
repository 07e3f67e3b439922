-- What attribution needs of each journey (store/rules.py), in one round trip: its window,
-- whether machine opens count, its goal history, and its conversions with their values and
-- trigger histories, histories in definition order (seq). Times travel in JSON as ISO text.
-- Only the revision of a journey whose rules the caller holds at that revision (migration
-- 0008): `held` is true, and its goals and conversions are null, not built. Rules this very
-- transaction changed are built every time (`mine`): it may change them again under the same
-- revision, and may roll back.
-- $1 tenant; $2 journey ids; $3 the revision the caller holds of each (-1: none).
with read as (
    select j.*,
        j.rules_revision is not distinct from pg_current_xact_id_if_assigned()::text::bigint
            as mine,
        k.held as held_revision
    from unnest($2::text[], $3::bigint[]) as k(journey_id, held)
    join journeys j on j.tenant_id = $1 and j.journey_id = k.journey_id
)
select j.journey_id, j.rules_revision, j.window_seconds, j.exclude_machine_opens, j.mine,
    j.rules_revision = j.held_revision and not j.mine as held,
    case when j.rules_revision <> j.held_revision or j.mine then (
        select coalesce(jsonb_agg(jsonb_build_object(
            'effective_time', g.effective_time, 'criterion', g.criterion) order by g.seq), '[]')
        from journey_goals g
        where g.tenant_id = $1 and g.journey_id = j.journey_id) end as goals,
    case when j.rules_revision <> j.held_revision or j.mine then (
        select coalesce(jsonb_agg(jsonb_build_object(
            'conversion_id', c.conversion_id,
            'value_currency', c.value_currency,
            'value_micros', c.value_micros,
            'triggers', (select coalesce(jsonb_agg(jsonb_build_object(
                    'effective_time', t.effective_time, 'criterion', t.criterion) order by t.seq),
                    '[]')
                from conversion_triggers t
                where t.tenant_id = $1 and t.journey_id = c.journey_id
                    and t.conversion_id = c.conversion_id)
        ) order by c.conversion_id), '[]')
        from conversions c
        where c.tenant_id = $1 and c.journey_id = j.journey_id) end as conversions
from read j
