-- The value of the cohort's goal conversions, per version and currency.
-- $1 tenant; $2 journey; [$3, $4) the entry range, conversions before $4; $5 version (0: all).
select e.version, a.value_currency as currency, sum(a.value_micros)::bigint as micros
from enrollments e
join awards a on a.tenant_id = e.tenant_id and a.enrollment_id = e.enrollment_id
    and a.conversion_id = ''
where e.tenant_id = $1 and e.journey_id = $2 and ($5 = 0 or e.version = $5)
    and e.enter_time >= $3 and e.enter_time < $4 and a.award_time < $4
    and a.value_currency is not null
group by e.version, a.value_currency
