-- Recounts a tenant's touchpoints per day from scratch (see touchpoint_counts in migration
-- 0002); the counts were deleted first. $1 tenant.
insert into touchpoint_counts (tenant_id, journey_id, day, message_id, version, action, shard,
    touchpoints)
select $1, journey_id, date_bin('1 day', occur_time, timestamptz '2000-01-01 00:00+00'),
    message_id, version, action, 0, count(*)
from touchpoints
where tenant_id = $1
group by 2, 3, 4, 5, 6
