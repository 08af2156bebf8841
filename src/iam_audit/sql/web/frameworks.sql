-- the frameworks of the catalogue
SELECT DISTINCT framework FROM aws_policy_controls
