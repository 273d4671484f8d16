# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl compare ORIGINAL CANDIDATE`: a damage report of one model against its original.

`command` parses and checks the options and runs the comparison; `models`
loads the two models and checks that they fit together; `document` builds the
JSON document; `render` and `plot` show the report; `progress` shows progress.
"""
