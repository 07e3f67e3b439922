-- The cohort counts' functions (migration 0005) in PL/pgSQL instead of SQL: a SQL function that
-- cannot be inlined (an INSERT) is planned again at every call, and the statement triggers call
-- one for every statement that changes an enrollment or a reach row. On a goal event's
-- re-decision (goal_met.sql, converted_times.sql) that planning was most of the statement:
-- 2 to 5 ms each. PL/pgSQL keeps the plan for the session. Same arguments, same statement.

create or replace function count_enrollment_facts(added enrollments[], removed enrollments[])
returns void language plpgsql as $$
begin
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
        set n = cohort_counts.n + excluded.n;
end $$;

create or replace function count_reach_facts(added enrollment_reach[], removed enrollment_reach[])
returns void language plpgsql as $$
begin
    insert into cohort_counts (tenant_id, journey_id, day, fact, key, version, holdout, shard, n)
    select c.tenant_id, c.journey_id, report_day(c.enter_time), c.fact, c.key, c.version,
        c.holdout, (pg_backend_pid() % 4)::smallint, sum(c.n)
    from (
        select r.tenant_id, r.journey_id, r.enter_time, r.key, r.version, r.holdout, f.fact, r.n
        from (select *, 1 as n from unnest(added) union all select *, -1 from unnest(removed))
            as r
        cross join lateral reach_facts(r.segment, r.first_time, r.converted_time) f
    ) c
    group by 1, 2, 3, 4, 5, 6, 7
    having sum(c.n) <> 0
    order by 1, 2, 3, 4, 5, 6, 7
    on conflict (tenant_id, journey_id, day, fact, key, version, holdout, shard) do update
        set n = cohort_counts.n + excluded.n;
end $$;
