"""Reading run directories back: summaries and TensorBoard scalars, aggregated over
seeds into tables and plots (the reports behind docs/results and ``normrl report``)."""
