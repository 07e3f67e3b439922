-- Goal conversions older than the re-decision horizon $3 (final: never re-decided) whose goal
-- event is one of $2, with the value of that event's latest amendment (an ORDER_UPDATED of the
-- same contact at or after it, by time then event id) where it differs from the credited one.
-- $1 tenant.
select a.*, latest.value_currency as amended_currency, latest.value_micros as amended_micros
from awards a
cross join lateral (
    -- the award keeps its goal event's contact and time: the event itself may be gone
    -- (retention), its amendments are not older than the horizon
    select x.value_currency, x.value_micros from goal_events x
    where x.tenant_id = $1 and x.amends_event_id = a.goal_event_id
        and x.contact_id = a.contact_id and x.occur_time >= a.award_time
    order by x.occur_time desc, x.event_id desc
    limit 1
) latest
where a.tenant_id = $1 and a.conversion_id = '' and a.goal_event_id = any($2::text[])
    and a.award_time < $3
    and (a.value_currency, a.value_micros)
        is distinct from (latest.value_currency, latest.value_micros)
