"""Operations logic without Dagster: settings, change detection, alerts, retry classification."""
