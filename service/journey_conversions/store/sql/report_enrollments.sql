-- One pass over the journey's enrollments that entered before the range [$3, $4) ends, per
-- version and arm (treated or holdout), for both the participation summary and the cohort:
--   participation in the range: active (entered before its end, not exited before its start),
--   exited in it, and engaged (active, and touched in the range while enrolled). Engaged reads
--   the first-touch facts: a first touch in the range decides it; only an enrollment first
--   touched before the range needs its touchpoints looked at, which never happens for a range
--   that starts before its entry (such as all time);
--   the cohort (entered in the range): entered, engaged (first touched before the end),
--   converted (goal conversion awarded before the end), both, and goal met before the end.
-- $1 tenant; $2 journey; $5 whether machine-generated opens are excluded. Every version is
-- counted (the cohort's baseline may be one not asked for): the caller picks the versions.
select e.version, e.holdout,
    count(*) filter (where e.exit_time is null or e.exit_time >= $3) as active,
    count(*) filter (where e.exit_time >= $3 and e.exit_time < $4) as exited,
    count(*) filter (where (e.exit_time is null or e.exit_time >= $3) and (
        (first.at >= $3 and first.at < $4)
        or (coalesce(first.at < $3, false) and exists (
            select 1 from touchpoints t
            where t.tenant_id = $1 and t.contact_id = e.contact_id and t.journey_id = $2
                and t.occur_time >= $3 and t.occur_time < $4
                and (e.exit_time is null or t.occur_time <= e.exit_time)
                and not (t.machine_generated and t.action = 2 and $5))))) as active_engaged,
    count(*) filter (where e.enter_time >= $3) as entered,
    count(*) filter (where e.enter_time >= $3 and first.at < $4) as engaged,
    count(a.award_time) filter (where e.enter_time >= $3) as converted,
    count(a.award_time) filter (where e.enter_time >= $3 and first.at < $4) as converted_engaged,
    count(*) filter (where e.enter_time >= $3 and e.goal_met_time < $4) as goal_met
from enrollments e
cross join lateral (
    select case when $5 then e.first_human_touch_time else e.first_touch_time end as at
) first
left join awards a on a.tenant_id = $1 and a.journey_id = $2
    and a.enrollment_id = e.enrollment_id and a.conversion_id = '' and a.award_time < $4
where e.tenant_id = $1 and e.journey_id = $2 and e.enter_time < $4
group by e.version, e.holdout
