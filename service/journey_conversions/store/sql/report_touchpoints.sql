-- Touchpoints in a range per message and action. $1 tenant; $2 journey; $3 version (0: all,
-- a touchpoint without version counts for the versions holding its message); [$4, $5) the range.
select message_id, action, count(*) as n from touchpoints t
where tenant_id = $1 and journey_id = $2 and occur_time >= $4 and occur_time < $5
  and ($3 = 0 or version = $3 or (version = 0 and exists (
    select 1 from journey_messages m where m.tenant_id = $1 and m.journey_id = $2
      and m.version = $3 and m.message_id = t.message_id)))
group by message_id, action
