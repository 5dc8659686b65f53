#!/bin/sh
# Debian's chromium for the console's browser tests (tests/integration/test_console_browser.py), installed when missing
# and possible; the tests skip, saying why, when it is not there. Never `playwright install`: Playwright
# drives this system browser.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium >/dev/null || \
		echo "chromium could not be installed: the browser tests will be skipped" >&2
else
	echo "no /usr/bin/chromium (apt-get install chromium): the browser tests will be skipped" >&2
fi
exit 0
