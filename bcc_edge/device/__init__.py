"""What runs on the board beside the runtime: calibrated scores and the referral policy
(`scores`), the self-test against the export's golden vectors (`selftest`), the input guard
(`guard`), the differential count (`count`), the folder watcher (`watch`) and the station's
page and HTTP API (`serve`, the [serve] extra). No TensorFlow, nothing from training."""
