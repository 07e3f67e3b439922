-- Goal events in a range of this journey's participants (active in an enrollment of the
-- version(s) at the event's time) that were credited to another journey, per that journey.
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range.
select credited_journey_id as journey_id, count(distinct goal_event_id) as n
from credited_elsewhere
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
    and occur_time >= $4 and occur_time < $5
group by credited_journey_id
