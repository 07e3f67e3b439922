-- Awards in a range (goal conversions and named conversions) per conversion, message and
-- currency. $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range. The sum stays
-- numeric: two values near the int64 limit overflowed a bigint (journey_report checks totals).
select conversion_id, message_id, value_currency, count(*) as n,
  coalesce(sum(value_micros), 0) as micros
from awards
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
  and award_time >= $4 and award_time < $5
group by conversion_id, message_id, value_currency
