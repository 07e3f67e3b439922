-- The active enrollments first touched before the range [$3, $4) that were touched in it while
-- enrolled, per version and arm: with those first touched in it (report_enrollments.sql), the
-- engaged. Only these need their touchpoints looked at; a range starting before every entry
-- (such as all time) has none. $1 tenant; $2 journey; $5 whether machine-generated opens are
-- excluded.
select e.version, e.holdout, count(*) as engaged
from enrollments e
where e.tenant_id = $1 and e.journey_id = $2 and e.enter_time < $3
    and (e.exit_time is null or e.exit_time >= $3)
    and case when $5 then e.first_human_touch_time else e.first_touch_time end < $3
    and exists (
        select 1 from touchpoints t
        where t.tenant_id = $1 and t.contact_id = e.contact_id and t.journey_id = $2
            and t.occur_time >= $3 and t.occur_time < $4
            and (e.exit_time is null or t.occur_time <= e.exit_time)
            and not (t.machine_generated and t.action = 2 and $5))
group by e.version, e.holdout
