-- The cohort of a report: per version and arm (treated or holdout), the enrollments that entered
-- in [$3, $4), and how many of them were engaged, converted and met the goal before $4.
-- $1 tenant; $2 journey; $5 version (0: all); $6 whether machine-generated opens are excluded.
select e.version, e.holdout,
    count(*) as entered,
    count(*) filter (where engaged.at < $4) as engaged,
    count(*) filter (where a.award_time < $4) as converted,
    count(*) filter (where a.award_time < $4 and engaged.at < $4) as converted_engaged,
    count(*) filter (where e.goal_met_time < $4) as goal_met
from enrollments e
cross join lateral (
    select case when $6 then e.first_human_touch_time else e.first_touch_time end as at
) engaged
left join awards a on a.tenant_id = e.tenant_id and a.enrollment_id = e.enrollment_id
    and a.conversion_id = ''
where e.tenant_id = $1 and e.journey_id = $2 and ($5 = 0 or e.version = $5)
    and e.enter_time >= $3 and e.enter_time < $4
group by e.version, e.holdout
