# Who the console gives which role (console.tf), computed from variables only, so that the tests
# can evaluate it with terraform and no provider (tests/project/test_terraform_console.py).
#
# IAP admits the console_viewer_groups and console_operator_groups; its assertion then names
# the signed-in address, never its groups, so the console's own lists (EMAIL_WORKER_CONSOLE_VIEWERS
# and ..._OPERATORS) are addresses and domain:NAME entries: as given, or else the user: and
# domain: members of the groups variables (a group's members cannot be known from its name).

locals {
  console_viewers   = var.console_viewers == null ? local.console_principals_of_viewer_groups : var.console_viewers
  console_operators = var.console_operators == null ? local.console_principals_of_operator_groups : var.console_operators
  console_principals_of_viewer_groups = concat(
    [for member in var.console_viewer_groups : trimprefix(member, "user:") if startswith(member, "user:")],
    [for member in var.console_viewer_groups : member if startswith(member, "domain:")],
  )
  console_principals_of_operator_groups = concat(
    [for member in var.console_operator_groups : trimprefix(member, "user:") if startswith(member, "user:")],
    [for member in var.console_operator_groups : member if startswith(member, "domain:")],
  )
}
