# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
`heretic-kl [heretic's flags] [--scorer NAME] [--kl-tokens N] [MODEL]`: heretic with a chosen scorer.

The data flows one way: `options` splits the command line into the launcher's
options and heretic's arguments; `config` reads `config.toml` and finds the
model; `scorers` resolves scorer names and builds heretic's `scorers` list;
`run` checks everything before any model loads and starts the host.
"""
