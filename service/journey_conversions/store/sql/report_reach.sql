-- Per step (segment 1) and path (segment 2): the cohort's treated enrollments (entered in
-- [$3, $4)) that reached it before $4, and how many of those converted before $4.
-- $1 tenant; $2 journey; $5 version (0: all).
select r.segment, r.key, count(*) as reached, count(a.enrollment_id) as converted
from enrollment_reach r
left join awards a on a.tenant_id = $1 and a.journey_id = $2
    and a.enrollment_id = r.enrollment_id and a.conversion_id = '' and a.award_time < $4
where r.tenant_id = $1 and r.journey_id = $2 and ($5 = 0 or r.version = $5)
    and r.enter_time >= $3 and r.enter_time < $4 and not r.holdout and r.first_time < $4
group by r.segment, r.key
