-- RMSE of the model and of the naive baseline per shop and test year, for one run.
SELECT
  shop_id,
  year,
  COUNT(*) AS predictions,
  SQRT(AVG(POW(predicted - actual, 2))) AS rmse,
  SQRT(AVG(POW(baseline - actual, 2))) AS baseline_rmse
FROM dataset.predictions
WHERE run_id = @run_id
GROUP BY shop_id, year
ORDER BY shop_id, year
