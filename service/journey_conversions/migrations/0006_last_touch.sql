-- The last touch of an enrollment, so that "engaged in a range" (touched in it while enrolled)
-- comes from the cohort counts too, instead of from each active enrollment's touchpoints.
-- Kept at day grain to keep writes rare: the earliest touchpoint, while enrolled, of the latest
-- UTC day the enrollment was touched (its first touch of that day). It moves only when a later
-- day is touched (or an earlier touchpoint of that day arrives late), not with every touchpoint
-- of a flood. For a range [S, E): one at or after S (and before E) proves a touch in the range;
-- one before S on S's day may have been followed by one in it (the report reads those
-- enrollments' touchpoints); one on an earlier day rules the range out.

-- The earliest of the latest day: the state function of latest_day_first, and how a stored
-- value meets new touchpoints (`later`).
create function later_day_first(kept timestamptz, later timestamptz) returns timestamptz
language sql immutable parallel safe
as $$
    select case
        when kept is null then later
        when later is null then kept
        when report_day(later) > report_day(kept) then later
        when report_day(later) = report_day(kept) then least(kept, later)
        else kept
    end
$$;
create aggregate latest_day_first(timestamptz) (sfunc = later_day_first, stype = timestamptz);

alter table enrollments add column last_touch_time timestamptz;
alter table enrollments add column last_human_touch_time timestamptz;

-- fact_time (migration 0005) takes the last touches in.
drop index enrollments_by_fact_time;
alter table enrollments drop column fact_time;
alter table enrollments add column fact_time timestamptz generated always as (greatest(enter_time,
    exit_time, first_touch_time, first_human_touch_time, goal_met_time, converted_time,
    last_touch_time, last_human_touch_time)) stored;
create index enrollments_by_fact_time on enrollments (tenant_id, journey_id, fact_time);
create index enrollments_by_last_touch on enrollments (tenant_id, journey_id, last_touch_time)
    where last_touch_time is not null;
create index enrollments_by_last_human_touch on enrollments
    (tenant_id, journey_id, last_human_touch_time) where last_human_touch_time is not null;

-- enrollment_facts (migration 0005) with two more: 23 last touched and 24 last touched by a
-- touch that is not a machine-generated open, on the day of that (day-grain) last touch.
drop function enrollment_facts(timestamptz, timestamptz, timestamptz, timestamptz, timestamptz,
    timestamptz);
create function enrollment_facts(enter_time timestamptz, exit_time timestamptz,
    first_touch timestamptz, first_human_touch timestamptz, goal_met timestamptz,
    converted timestamptz, last_touch timestamptz, last_human_touch timestamptz)
returns table (fact smallint, basis timestamptz, since timestamptz)
language sql immutable parallel safe
as $$
    select f.fact, f.basis, f.since
    from (values
        (1::smallint, enter_time, enter_time),
        (2::smallint, enter_time, first_touch),
        (3::smallint, enter_time, first_human_touch),
        (4::smallint, enter_time, converted),
        (5::smallint, enter_time, case when converted is not null and first_touch is not null
            then greatest(converted, first_touch) end),
        (6::smallint, enter_time, case when converted is not null
            and first_human_touch is not null then greatest(converted, first_human_touch) end),
        (7::smallint, enter_time, goal_met),
        (20::smallint, exit_time, exit_time),
        (21::smallint, first_touch, first_touch),
        (22::smallint, first_human_touch, first_human_touch),
        (23::smallint, last_touch, last_touch),
        (24::smallint, last_human_touch, last_human_touch)
    ) as f(fact, basis, since)
    where f.since is not null
$$;

create or replace function count_enrollment_facts(added enrollments[], removed enrollments[])
returns void language sql as $$
    insert into cohort_counts (tenant_id, journey_id, day, fact, key, version, holdout, shard, n)
    select c.tenant_id, c.journey_id, report_day(c.basis), c.fact, '', c.version, c.holdout,
        (pg_backend_pid() % 4)::smallint, sum(c.n)
    from (
        select r.tenant_id, r.journey_id, r.version, r.holdout, f.fact, f.basis, r.n
        from (select *, 1 as n from unnest(added) union all select *, -1 from unnest(removed))
            as r
        cross join lateral enrollment_facts(r.enter_time, r.exit_time, r.first_touch_time,
            r.first_human_touch_time, r.goal_met_time, r.converted_time, r.last_touch_time,
            r.last_human_touch_time) f
    ) c
    group by 1, 2, 3, 4, 5, 6, 7
    having sum(c.n) <> 0
    order by 1, 2, 3, 4, 5, 6, 7
    on conflict (tenant_id, journey_id, day, fact, key, version, holdout, shard) do update
        set n = cohort_counts.n + excluded.n
$$;

-- The last touches of the enrollments there (the update trigger counts them).
update enrollments e set
    last_touch_time = f.any_time,
    last_human_touch_time = f.human_time
from (
    select p.tenant_id, p.enrollment_id,
        latest_day_first(t.occur_time) as any_time,
        latest_day_first(t.occur_time) filter (where not (t.machine_generated and t.action = 2))
            as human_time
    from enrollments p
    join touchpoints t on t.tenant_id = p.tenant_id and t.contact_id = p.contact_id
        and t.journey_id = p.journey_id and t.occur_time >= p.enter_time
        and (p.exit_time is null or t.occur_time <= p.exit_time)
    group by p.tenant_id, p.enrollment_id
) f
where e.tenant_id = f.tenant_id and e.enrollment_id = f.enrollment_id;
