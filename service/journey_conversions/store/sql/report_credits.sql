-- Goal conversions in a range split across messages by the split credit models, with the
-- value each share carries, per message and currency.
-- $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range.
select message_id, value_currency,
    sum(first_touch) as first_touch, sum(linear) as linear,
    sum(position_based) as position_based, sum(time_decay) as time_decay,
    sum(value_micros * first_touch) as first_touch_micros,
    sum(value_micros * linear) as linear_micros,
    sum(value_micros * position_based) as position_based_micros,
    sum(value_micros * time_decay) as time_decay_micros
from conversion_credits
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
    and award_time >= $4 and award_time < $5
group by message_id, value_currency
