-- Touchpoints in a range per message and action: whole UTC days [$6, $7) from the daily counts,
-- the rest of the range ([$4, $6) and [$7, $5)) from the touchpoints themselves.
-- $1 tenant; $2 journey; $3 version (0: all; a touchpoint without version counts for the
-- versions holding its message); [$4, $5) the range.
select message_id, action, sum(n)::bigint as n
from (
    select message_id, version, action, touchpoints as n from touchpoint_counts
    where tenant_id = $1 and journey_id = $2 and day >= $6 and day < $7
    union all
    select message_id, version, action, 1 from touchpoints
    where tenant_id = $1 and journey_id = $2
        and ((occur_time >= $4 and occur_time < $6) or (occur_time >= $7 and occur_time < $5))
) t
where $3 = 0 or version = $3 or (version = 0 and exists (
    select 1 from journey_messages m where m.tenant_id = $1 and m.journey_id = $2
        and m.version = $3 and m.message_id = t.message_id))
group by message_id, action
