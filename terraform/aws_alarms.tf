# CloudWatch alarms on the SES account's reputation. AWS reviews an account whose bounce rate
# reaches 5% or whose complaint rate reaches 0.1%, and may pause its sending at 10% and 0.5%:
# these alarms fire at the review levels, while there is time to act (docs/operations.md,
# Alerts). SES publishes both rates for the whole account in the AWS/SES namespace, as
# fractions (0.05 is 5%), over a window of recent sending.

locals {
  ses_reputation_alarms = {
    bounce-rate = {
      metric    = "Reputation.BounceRate"
      threshold = 0.05
      what      = "bounce rate"
    }
    complaint-rate = {
      metric    = "Reputation.ComplaintRate"
      threshold = 0.001
      what      = "complaint rate"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "ses_reputation" {
  for_each = local.ses_reputation_alarms

  alarm_name        = "${var.ses_configuration_set_name}-ses-${each.key}"
  alarm_description = "The SES account's ${each.value.what} reached ${each.value.threshold * 100}%, where AWS starts a review (and may later pause sending). See docs/operations.md, section Alerts, in the email-worker repository."
  namespace         = "AWS/SES"
  metric_name       = each.value.metric
  statistic         = "Maximum"
  period            = 900

  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = 1
  # SES publishes the rates only while it sends: no data keeps the alarm as it was.
  treat_missing_data = "ignore"

  alarm_actions = var.aws_alarm_actions
  ok_actions    = var.aws_alarm_actions
}
