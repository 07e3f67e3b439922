-- Inserts touchpoints idempotently (their ids in touchpoint_ids) in one round trip, counts them
-- per day (touchpoint_counts), keeps the facts of the enrollments they touch (a touchpoint of an enrollment's journey while it
-- is active): the first and last touches (migration 0005) and the steps and paths reached; and
-- says for each new touchpoint whether a goal event of its contact lies within its journey's
-- window after it: then the contact must be re-decided.
-- $1 tenant; $2.. the columns, one array each.
with fresh as (
    -- the idempotency key (migration 0006): a repeated id inserts nothing below
    insert into touchpoint_ids (tenant_id, event_id, contact_id, occur_time)
    select $1, e, c, o from unnest($2::text[], $3::text[], $9::timestamptz[]) as x(e, c, o)
    on conflict (tenant_id, event_id) do nothing
    returning event_id
),
new as (
    insert into touchpoints (tenant_id, event_id, contact_id, journey_id, version, message_id,
        channel, action, occur_time, machine_generated)
    select $1, x.* from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
        $7::smallint[], $8::smallint[], $9::timestamptz[], $10::bool[])
        as x(e, c, j, v, m, ch, a, o, mg)
    where x.e in (select event_id from fresh)
    returning event_id, contact_id, journey_id, message_id, version, action, occur_time,
        machine_generated and action = 2 as machine_open
),
counted as (
    insert into touchpoint_counts (tenant_id, journey_id, day, message_id, version, action,
        shard, touchpoints)
    select $1, journey_id, date_bin('1 day', occur_time, timestamptz '2000-01-01 00:00+00'),
        message_id, version, action, (pg_backend_pid() % 4)::smallint, count(*)
    from new
    group by 2, 3, 4, 5, 6
    on conflict (tenant_id, journey_id, day, message_id, version, action, shard) do update
        set touchpoints = touchpoint_counts.touchpoints + excluded.touchpoints
),
touched as (
    select e.enrollment_id, e.journey_id, e.version, e.enter_time, e.holdout, e.converted_time,
        new.message_id, new.occur_time, new.machine_open
    from new
    join enrollments e on e.tenant_id = $1 and e.contact_id = new.contact_id
        and e.journey_id = new.journey_id and e.enter_time <= new.occur_time
        and (e.exit_time is null or e.exit_time >= new.occur_time)
),
firsts as (
    select enrollment_id, min(occur_time) as any_time,
        min(occur_time) filter (where not machine_open) as human_time,
        latest_day_first(occur_time) as any_last,
        latest_day_first(occur_time) filter (where not machine_open) as human_last
    from touched
    group by enrollment_id
),
engaged as (
    update enrollments e set
        first_touch_time = least(e.first_touch_time, f.any_time),
        first_human_touch_time = least(e.first_human_touch_time, f.human_time),
        last_touch_time = later_day_first(e.last_touch_time, f.any_last),
        last_human_touch_time = later_day_first(e.last_human_touch_time, f.human_last)
    from firsts f
    where e.tenant_id = $1 and e.enrollment_id = f.enrollment_id
        -- most touchpoints of a flood leave all four as they were: no write then
        and (e.first_touch_time, e.first_human_touch_time, e.last_touch_time,
            e.last_human_touch_time) is distinct from (least(e.first_touch_time, f.any_time),
            least(e.first_human_touch_time, f.human_time),
            later_day_first(e.last_touch_time, f.any_last),
            later_day_first(e.last_human_touch_time, f.human_last))
),
reached as (
    insert into enrollment_reach (tenant_id, enrollment_id, segment, key, journey_id, version,
        enter_time, holdout, converted_time, first_time)
    select $1, t.enrollment_id, s.segment, s.key, t.journey_id, t.version, t.enter_time,
        t.holdout, t.converted_time, min(t.occur_time)
    from touched t
    cross join lateral (
        select m.step_id, m.path from journey_messages m
        where m.tenant_id = $1 and m.journey_id = t.journey_id and m.message_id = t.message_id
        order by m.version = t.version desc, m.version
        limit 1
    ) m
    cross join lateral (values (1::smallint, m.step_id), (2::smallint, m.path)) as s(segment, key)
    where s.key <> ''
    group by t.enrollment_id, s.segment, s.key, t.journey_id, t.version, t.enter_time, t.holdout,
        t.converted_time
    on conflict (tenant_id, enrollment_id, segment, key) do update
        set first_time = excluded.first_time
        where enrollment_reach.first_time > excluded.first_time
)
select new.event_id, new.contact_id, exists (
    select 1 from goal_events g
    join journeys j on j.tenant_id = $1 and j.journey_id = new.journey_id
    where g.tenant_id = $1 and g.contact_id = new.contact_id
        and g.occur_time >= new.occur_time
        and g.occur_time <= new.occur_time + make_interval(secs => j.window_seconds)
) as touches_goal_event
from new
