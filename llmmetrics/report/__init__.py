"""``llmmetrics report``: the design article's dashboard as one HTML file that needs no server to be read.

Modules follow the page's making: :mod:`.data` reads the records once, through the sources and totals of
``llmmetrics traces``, into :mod:`.buckets` (time buckets per model, their width chosen from the range) and
:mod:`.quantiles` (latency percentiles in constant memory); :mod:`.panels` turns the buckets into the four
panels of the overview dashboard, with its thresholds; :mod:`.charts` draws them as SVG (pygal, the
``report`` extra), :mod:`.page` lays out the HTML, and :mod:`.command` is the subcommand.
"""
