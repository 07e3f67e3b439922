-- The engaged of the range [$3, $4) (active enrollments touched in it while enrolled) that the
-- cohort counts of last touches (report_enrollments.sql) cannot tell, per version and arm:
--   last touched (day grain, migration 0005) at or after $4: engaged if first touched in the
--   range, and if first touched before it, when a touchpoint of the range says so;
--   last touched on the day holding $3 but before $3: a later touchpoint of that day may lie in
--   the range (first touched before it: only its touchpoints tell).
-- For a range ending now and starting at a day's start (or before every entry), none.
-- $1 tenant; $2 journey; $5 whether machine-generated opens are excluded; $6 the start of the
-- UTC day holding $3.
with edges as (
    select e.version, e.holdout, e.contact_id, e.exit_time,
        case when $5 then e.first_human_touch_time else e.first_touch_time end as first_touch
    from enrollments e
    where e.tenant_id = $1 and e.journey_id = $2 and case when $5
        then e.last_human_touch_time >= $4
            or (e.last_human_touch_time >= $6 and e.last_human_touch_time < $3)
        else e.last_touch_time >= $4 or (e.last_touch_time >= $6 and e.last_touch_time < $3) end
)
select d.version, d.holdout, count(*) as engaged
from edges d
where (d.first_touch >= $3 and d.first_touch < $4)
    or (d.first_touch < $3 and exists (
        select 1 from touchpoints t
        where t.tenant_id = $1 and t.contact_id = d.contact_id and t.journey_id = $2
            and t.occur_time >= $3 and t.occur_time < $4
            and (d.exit_time is null or t.occur_time <= d.exit_time)
            and not (t.machine_generated and t.action = 2 and $5)))
group by d.version, d.holdout
