"""Operations of a running deployment: housekeeping of logs and the metadata DB."""
