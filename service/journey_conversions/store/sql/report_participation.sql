-- Participation in a range of treated enrollments (holdout ones count only in holdout lift):
-- entered, active, exited, and engaged (active, and touched in the range while enrolled).
-- Engaged reads the first-touch facts: a first touch in the range decides it; only an
-- enrollment first touched before the range needs its touchpoints looked at, which never
-- happens for a range that starts before its entry (such as all time).
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range; $6 whether machine-generated
-- opens are excluded.
select
    count(*) filter (where enter_time >= $4 and enter_time < $5) as entered,
    count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4)) as active,
    count(*) filter (where exit_time >= $4 and exit_time < $5) as exited,
    count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4) and (
        (first.at >= $4 and first.at < $5)
        or (coalesce(first.at < $4, false) and exists (
            select 1 from touchpoints t
            where t.tenant_id = $1 and t.contact_id = e.contact_id and t.journey_id = $2
                and t.occur_time >= $4 and t.occur_time < $5
                and (e.exit_time is null or t.occur_time <= e.exit_time)
                and not (t.machine_generated and t.action = 2 and $6))))) as engaged
from enrollments e
cross join lateral (
    select case when $6 then e.first_human_touch_time else e.first_touch_time end as at
) first
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3) and not holdout
