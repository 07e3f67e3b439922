-- The stored touchpoints of some ids ($2), found through touchpoint_ids: where each lies (its
-- contact and time) leads to its month's partition and row by touchpoints_by_contact.
-- $1 tenant.
select t.event_id, t.contact_id, t.journey_id, t.version, t.message_id, t.channel, t.action,
    t.occur_time, t.machine_generated
from touchpoint_ids i
join touchpoints t on t.tenant_id = i.tenant_id and t.contact_id = i.contact_id
    and t.occur_time = i.occur_time and t.event_id = i.event_id
where i.tenant_id = $1 and i.event_id = any($2::text[])
