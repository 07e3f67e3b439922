-- Writes what a re-decision decided of each enrollment of its contacts, in one statement (one
-- new row version of an enrollment that both met its goal and converted, and one run of the
-- cohort counts' trigger, instead of two):
-- * its goal-met time (the report's holdout lift). A stored time before the re-decision
--   horizon $2 is final: its goal event was not re-read, so it stays;
-- * for the enrollments whose goal conversion changed ($5), its goal conversion time (its goal
--   award's, or none, read from awards as just written), copied to its reach rows too, where
--   the cohort counts read it (migration 0005).
-- $1 tenant; $2 horizon; $3 enrollment ids; $4 goal-met times (null: none); $5 whether the
-- goal conversion changed.
with decided as (
    select k.enrollment_id, k.met, k.conversion_changed, a.award_time
    from unnest($3::text[], $4::timestamptz[], $5::bool[])
        as k(enrollment_id, met, conversion_changed)
    left join awards a on k.conversion_changed and a.tenant_id = $1
        and a.enrollment_id = k.enrollment_id and a.conversion_id = ''
),
reach as (
    update enrollment_reach r set converted_time = d.award_time
    from decided d
    where d.conversion_changed and r.tenant_id = $1 and r.enrollment_id = d.enrollment_id
        and r.converted_time is distinct from d.award_time
)
update enrollments e set
    goal_met_time = case when e.goal_met_time is null or e.goal_met_time >= $2 then d.met
        else e.goal_met_time end,
    converted_time = case when d.conversion_changed then d.award_time else e.converted_time end
from decided d
where e.tenant_id = $1 and e.enrollment_id = d.enrollment_id
    and ((d.met is distinct from e.goal_met_time
            and (e.goal_met_time is null or e.goal_met_time >= $2))
        or (d.conversion_changed and d.award_time is distinct from e.converted_time))
