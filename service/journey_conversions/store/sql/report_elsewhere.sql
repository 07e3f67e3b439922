-- Goal events in a range of this journey's participants (active in an enrollment of the
-- version(s) at the event's time) that were credited to another journey, per that journey.
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range.
select o.journey_id, count(*) as n
from goal_outcomes o
where o.tenant_id = $1 and o.journey_id <> $2 and o.status in (1, 2)
    and o.occur_time >= $4 and o.occur_time < $5
    and exists (
        select 1 from enrollments e
        where e.tenant_id = $1 and e.contact_id = o.contact_id and e.journey_id = $2
            and ($3 = 0 or e.version = $3)
            and e.enter_time <= o.occur_time
            and (e.exit_time is null or e.exit_time >= o.occur_time))
group by o.journey_id
order by n desc, o.journey_id
