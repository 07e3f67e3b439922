-- Touchpoints in a range per message and action: whole UTC days [$4, $5) from the daily counts,
-- plus or minus (sign $8) the touchpoints themselves in the spans [$6, $7) (activity.day_cover:
-- a partial day is read directly, or as the whole day less its part outside the range).
-- $1 tenant; $2 journey; $3 version (0: all; a touchpoint without version counts for the
-- versions holding its message).
select message_id, action, sum(n)::bigint as n
from (
    select message_id, version, action, touchpoints as n from touchpoint_counts
    where tenant_id = $1 and journey_id = $2 and day >= $4 and day < $5
    union all
    select t.message_id, t.version, t.action, s.sign
    from unnest($6::timestamptz[], $7::timestamptz[], $8::int[]) as s(from_time, to_time, sign)
    -- Each span by its own index range scan: "offset 0" keeps the planner from joining the
    -- spans to all of the journey's touchpoints by hash, which a large work_mem invites.
    cross join lateral (
        select message_id, version, action from touchpoints
        where tenant_id = $1 and journey_id = $2
            and occur_time >= s.from_time and occur_time < s.to_time
        offset 0
    ) t
) t
where $3 = 0 or version = $3 or (version = 0 and exists (
    select 1 from journey_messages m where m.tenant_id = $1 and m.journey_id = $2
        and m.version = $3 and m.message_id = t.message_id))
group by message_id, action
having sum(n) <> 0
