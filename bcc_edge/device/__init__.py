"""What runs on the board beside the runtime: calibrated scores and the referral policy
(`scores`), the self-test against the export's golden vectors (`selftest`), the input guard
(`guard`) and the differential count (`count`). No TensorFlow, nothing from training."""
