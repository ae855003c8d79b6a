DROP TABLE alarm_acks;
