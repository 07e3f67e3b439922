-- The cohort's goal conversions before the end of [$3, $4) (treated enrollments that entered in
-- the range; holdout ones are never credited), per version asked for ($5, 0: all) and, with
-- grouping sets, over all of them (rows where version is null): how long they took and, per
-- currency, their value. Read from the awards alone (each carries its enrollment's entry).
-- percentile_cont interpolates linearly between the closest ranks (Hyndman and Fan's
-- definition 7); times are seconds from entry and from the credited touchpoint.
-- $1 tenant; $2 journey.
with conversions as materialized (
    select version, award_time - enter_time as from_entry,
        award_time - touchpoint_time as from_last_touch, value_currency, value_micros
    from awards
    where tenant_id = $1 and journey_id = $2 and conversion_id = '' and award_time < $4
        and ($5 = 0 or version = $5) and enter_time >= $3 and enter_time < $4 and not holdout
)
select 'times' as part, version, count(*) as conversions,
    percentile_cont(array[0.5, 0.9]) within group (order by extract(epoch from from_entry))
        as from_entry,
    percentile_cont(array[0.5, 0.9]) within group (order by extract(epoch from from_last_touch))
        as from_last_touch,
    null::text as currency, null::numeric as micros
from conversions
group by grouping sets ((version), ())
union all
select 'values', version, null, null, null, value_currency, sum(value_micros)
from conversions
where value_currency is not null
group by version, value_currency
