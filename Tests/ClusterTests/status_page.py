"""Drives placement's status page in a real browser (Debian's chromium through
playwright) for StatusPageBrowserTests.

    status_page.py URL MEMBER,MEMBER,... NEW_MEMBER

Loads the page, waits until it shows the given members (rows, ring arcs and a
live event stream), prints READY, then waits for NEW_MEMBER to appear live: its
row, its arcs on the ring and a member_joined line in the event log, with no
reload of the page. Prints JOINED and exits 0, or says what was missing, saves
a screenshot next to the log and exits 1.
"""
import os
import sys
import tempfile

from playwright.sync_api import sync_playwright


def main():
    url, members, new_member = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    shot = os.path.join(tempfile.gettempdir(), "ringstore-status-page.png")
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=chromium, args=args, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        step = "loading the page"
        try:
            page.goto(url)
            step = "the page to show every member"
            for member in members:
                page.wait_for_selector(f'#members tr[data-address="{member}"][data-state="up"]', timeout=30000)
                page.wait_for_selector(f'#ring path[data-member="{member}"]', state="attached", timeout=30000)
            step = "the event stream to be live"
            page.wait_for_selector("#live.on", timeout=30000)
            page.evaluate("window.__loadedOnce = true")
            print("READY", flush=True)

            step = f"{new_member} to appear live"
            page.wait_for_selector(f'#members tr[data-address="{new_member}"]', timeout=60000)
            page.wait_for_selector(f'#ring path[data-member="{new_member}"]', state="attached", timeout=60000)
            page.wait_for_function(
                """member => [...document.querySelectorAll('#events div[data-type="member_joined"]')]
                               .some(line => line.textContent.includes(member))""",
                arg=new_member, timeout=60000)
            step = "the page to have stayed the same page (live, not reloaded)"
            if page.evaluate("window.__loadedOnce") is not True:
                raise RuntimeError("the page was reloaded")
            count = page.text_content("#member-count")
            if count != str(len(members) + 1):
                raise RuntimeError(f"member count shows {count}, expected {len(members) + 1}")
            if errors:
                raise RuntimeError("script errors: " + "; ".join(errors))
            print("JOINED", flush=True)
        except Exception as error:  # say what was missing, and keep a picture
            page.screenshot(path=shot, full_page=True)
            print(f"FAILED waiting for {step}: {error} (screenshot: {shot})", flush=True)
            browser.close()
            sys.exit(1)
        browser.close()


if __name__ == "__main__":
    main()
