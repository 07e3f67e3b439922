-- Awards per day of the report's time zone: $6 holds each day's start (UTC instants, in
-- order), so width_bucket gives the day's number (1 for the first). Goal conversions carry
-- the empty conversion id. $1 tenant; $2 journey; $3 version (0: all); [$4, $5) the range.
-- The sum stays numeric, as in report_awards.sql.
select width_bucket(award_time, $6::timestamptz[]) as day, conversion_id = '' as goal,
    value_currency, count(*) as n, coalesce(sum(value_micros), 0) as micros
from awards
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
    and award_time >= $4 and award_time < $5
group by 1, 2, 3
