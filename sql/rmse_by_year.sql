-- RMSE of the model and of the naive baseline per test year over all shops, for one run.
SELECT
  year,
  COUNT(*) AS predictions,
  SQRT(AVG(POW(predicted - actual, 2))) AS rmse,
  SQRT(AVG(POW(baseline - actual, 2))) AS baseline_rmse
FROM dataset.predictions
WHERE run_id = @run_id
GROUP BY year
ORDER BY year
