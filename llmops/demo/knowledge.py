"""What the demo's simulated model knows: the Acme products and their support answers.

:data:`ACME` is the :class:`~llmops.simulate.World` of the demo (``llmops demo``), of the
offline evals (``llmops eval run --offline``, whose example suites in ``evals/`` are about
these products) and of the simulator's tests: three products (Acme Router, Acme Mesh, Acme
Cloud), a knowledge base with a fix per product and topic, and four features that do not
exist, which the model makes up when a prompt does not forbid it.
"""

from __future__ import annotations

from llmops.simulate import Fix, World

__all__ = ["ACME", "INVENTED_FEATURES", "PRODUCTS"]

PRODUCTS: tuple[str, ...] = ("Acme Router", "Acme Mesh", "Acme Cloud")

#: Names of the product features the simulated model makes up (none of them exists); an
#: answer that contains one of them hallucinated.
INVENTED_FEATURES: tuple[str, ...] = ("TurboBoost", "SignalMax", "AutoHeal", "Acme Genie")

#: What the model adds to an answer when it makes a feature up (``{product}``: the product).
INVENTIONS = (
    "You can also press the Acme TurboBoost button to fix this instantly.",
    "You can also turn on SignalMax mode in the Acme app to double the range.",
    "The {product} also has a built-in AutoHeal feature that repairs this overnight.",
    "You can also ask Acme Genie, our voice assistant, to run a full repair for you.",
)

KNOWLEDGE: dict[str, dict[str, Fix]] = {
    "Acme Router": {
        "reset": Fix(
            "restore the Acme Router to factory settings by holding the recessed Reset button "
            "on the back for 10 seconds with a paperclip",
            (
                "Wait about 3 minutes until the status light turns solid white.",
                "Join the default network printed on the label and run setup again in the "
                "Acme app.",
            ),
            "the status light is solid white and the network name from the label shows up",
            "After about 3 minutes it restarts, and you can set it up again in the Acme app "
            "with the details on the label.",
        ),
        "wifi": Fix(
            "restart the Acme Router by unplugging it for 30 seconds and move it to a "
            "central, open spot",
            (
                "In the Acme app, open Wi-Fi settings and set the 5 GHz channel to Auto.",
                "Run the speed test in the Acme app next to the router and again in the "
                "problem room.",
            ),
            "the speed test in the problem room is close to your plan speed and devices stay "
            "connected",
            "If it still drops, open Wi-Fi settings in the Acme app and set the 5 GHz channel "
            "to Auto.",
        ),
        "password": Fix(
            "reset the Acme Router admin password with Forgot password on the sign-in screen "
            "of the Acme app",
            (
                "Open the reset link we email you within 15 minutes.",
                "Choose a new password of at least 12 characters and sign in again.",
            ),
            "you can sign in to the Acme app and see your router's dashboard",
            "The reset link arrives by email and stays valid for 15 minutes.",
        ),
        "billing": Fix(
            "open the Billing page of your Acme account and compare the Acme Router "
            "subscription charge with your invoices",
            (
                "If a charge is duplicated, choose Request a refund next to it.",
                "Keep the confirmation email, as refunds take 5 to 7 business days.",
            ),
            "the Billing page shows the refund as pending and you get a confirmation email",
            "If a charge is duplicated, choose Request a refund next to it, and the money is "
            "back within 5 to 7 business days.",
        ),
        "firmware": Fix(
            "update the Acme Router firmware in the Acme app under Settings > Firmware > "
            "Check for updates",
            (
                "Keep the router plugged in while it installs, which takes about 5 minutes.",
                "Let it restart on its own, then reconnect your devices.",
            ),
            "Settings > Firmware shows the latest version and the status light is solid white",
            "Keep it plugged in during the 5-minute install and let it restart on its own.",
        ),
        "setup": Fix(
            "connect the Acme Router to your modem with the included Ethernet cable and power "
            "it on",
            (
                "Open the Acme app, tap Add device and scan the QR code on the label.",
                "Name your network, choose a password and wait for the status light to turn "
                "solid white.",
            ),
            "the status light is solid white and your phone joins the new network",
            "Then open the Acme app, tap Add device and scan the QR code on the label to "
            "finish setup.",
        ),
        "generic": Fix(
            "restart the Acme Router by unplugging it for 30 seconds",
            (
                "Note the colour of the status light once it is back on.",
                "Send us the diagnostics report from Settings > Help in the Acme app, and let "
                "me look into it.",
            ),
            "the status light is solid white and your devices reconnect",
            "Meanwhile, please restart it by unplugging it for 30 seconds and send us the "
            "diagnostics report from Settings > Help in the Acme app.",
            opening="Thanks for reaching out about your Acme Router, let me look into it.",
        ),
    },
    "Acme Mesh": {
        "reset": Fix(
            "restore the Acme Mesh to factory settings by holding the Reset button under each "
            "node for 10 seconds, starting with the main node",
            (
                "Wait until every node blinks blue.",
                "Set up the main node first in the Acme app, then add the other nodes one by one.",
            ),
            "every node shows a solid white light and appears in the Acme app",
            "When every node blinks blue, set up the main node first in the Acme app and then "
            "add the others.",
        ),
        "wifi": Fix(
            "place your Acme Mesh nodes no more than two rooms apart and restart the main node",
            (
                "In the Acme app, open Network > Nodes and check that every node shows a Good "
                "or Great signal.",
                "Move any node with a Weak signal one room closer to the main node.",
            ),
            "every node shows a Good or Great signal and the speed test in the problem room "
            "is close to your plan speed",
            "Then check Network > Nodes in the Acme app and move any node with a Weak signal "
            "one room closer.",
        ),
        "password": Fix(
            "reset your Acme Mesh account password with Forgot password on the sign-in screen "
            "of the Acme app",
            (
                "Open the reset link we email you within 15 minutes.",
                "Choose a new password and sign in again on each phone that manages the network.",
            ),
            "you can sign in and see all your Acme Mesh nodes in the Acme app",
            "The reset link arrives by email and is valid for 15 minutes.",
        ),
        "billing": Fix(
            "open the Billing page of your Acme account and compare the Acme Mesh charge with "
            "your invoices",
            (
                "If a charge is duplicated, choose Request a refund next to it.",
                "Keep the confirmation email, as refunds take 5 to 7 business days.",
            ),
            "the Billing page shows the refund as pending and you get a confirmation email",
            "If a charge is duplicated, choose Request a refund next to it, and the money is "
            "back within 5 to 7 business days.",
        ),
        "firmware": Fix(
            "update your Acme Mesh in the Acme app under Network > Firmware > Update all nodes",
            (
                "Keep every node powered on during the update, which takes about 10 minutes.",
                "Let the nodes restart on their own, the main node comes back first.",
            ),
            "Network > Firmware shows every node on the latest version",
            "Keep all nodes powered during the 10-minute update and let them restart on their own.",
        ),
        "setup": Fix(
            "connect the main Acme Mesh node to your modem with the included Ethernet cable "
            "and power it on",
            (
                "In the Acme app, tap Add device and scan the QR code under the main node.",
                "Plug in the other nodes one or two rooms away and add them with Add node.",
            ),
            "every node shows a solid white light and appears under Network > Nodes",
            "Then tap Add device in the Acme app, scan the QR code under the main node and add "
            "the other nodes with Add node.",
        ),
        "generic": Fix(
            "restart the main Acme Mesh node by unplugging it for 30 seconds",
            (
                "Check under Network > Nodes in the Acme app which nodes are offline.",
                "Send us the diagnostics report from Settings > Help in the Acme app, and let "
                "me look into it.",
            ),
            "all nodes show as online in the Acme app",
            "Meanwhile, please restart the main node and send us the diagnostics report from "
            "Settings > Help in the Acme app.",
            opening="Thanks for reaching out about your Acme Mesh, let me look into it.",
        ),
    },
    "Acme Cloud": {
        "reset": Fix(
            "restore the default settings in the Acme Cloud web console under Settings > "
            "Advanced > Reset to defaults",
            (
                "Confirm the reset, your files are kept and only settings change.",
                "Sign out of the Acme Cloud desktop app and sign in again to pick up the defaults.",
            ),
            "Settings shows the defaults again and the desktop app says Up to date",
            "Your files are kept, and after you sign in again the desktop app picks up the "
            "default settings.",
        ),
        "wifi": Fix(
            "pause and resume sync in the Acme Cloud desktop app and check the upload limit "
            "under Preferences > Network",
            (
                "Set the upload limit to Automatic.",
                "Exclude very large folders you don't need under Preferences > Folders.",
            ),
            "the desktop app says Up to date and new files appear in the web console within a "
            "minute",
            "Setting the upload limit to Automatic and excluding very large folders usually "
            "speeds sync up.",
        ),
        "password": Fix(
            "reset your Acme Cloud password with Forgot password on the Acme Cloud sign-in page",
            (
                "Open the reset link we email you within 15 minutes.",
                "Sign in again in the web console and the desktop app, with your two-factor "
                "code if asked.",
            ),
            "you can sign in to the web console and the desktop app says Up to date",
            "The link arrives by email and is valid for 15 minutes, then sign in again in the "
            "desktop app.",
        ),
        "billing": Fix(
            "open Billing in the Acme Cloud web console and compare the charge with your invoices",
            (
                "If you were charged twice or after cancelling, choose Request a refund next "
                "to the charge.",
                "Check that your plan and number of seats are what you expect.",
            ),
            "the Billing page shows the refund as pending and you get a confirmation email",
            "If you were charged twice or after cancelling, choose Request a refund next to "
            "the charge, and it is back within 5 to 7 business days.",
        ),
        "firmware": Fix(
            "update the Acme Cloud desktop app from its menu with Check for updates",
            (
                "Quit and reopen the app once the update has installed.",
                "Sign in again if asked and let it finish the first sync.",
            ),
            "the About window shows the latest version and the app says Up to date",
            "Quit and reopen the app once it has installed and let it finish the first sync.",
        ),
        "setup": Fix(
            "download the Acme Cloud desktop app from the web console under Apps and install it",
            (
                "Sign in with your Acme Cloud account.",
                "Choose the folders to sync and wait for the first sync to finish.",
            ),
            "the app says Up to date and your files appear in the web console",
            "Then sign in with your Acme Cloud account and choose the folders to sync.",
        ),
        "generic": Fix(
            "sign out of the Acme Cloud desktop app and sign in again",
            (
                "Check the status page in the web console for open incidents.",
                "Send us the log file from Help > Export logs in the desktop app, and let me "
                "look into it.",
            ),
            "the desktop app says Up to date",
            "Meanwhile, please sign out and in again in the desktop app and send us the log "
            "file from Help > Export logs.",
            opening="Thanks for reaching out about Acme Cloud, let me look into it.",
        ),
    },
}

# Topic keywords; on a tie, the topic listed first wins ("reset my password" is about the
# password, "my bill after the update" about billing).
TOPICS = (
    ("billing", r"\b(?:bill\w*|invoic\w*|refund\w*|charg\w*|subscription|payment)"),
    ("password", r"\b(?:password\w*|log ?in|sign ?in|locked out)\b"),
    ("reset", r"\b(?:reset\w*|factory)\b"),
    ("firmware", r"\b(?:firmware|updat\w*|upgrad\w*)"),
    ("wifi", r"\b(?:wi-?fi|slow\w*|drops?|dropp\w*|disconnect\w*|signal)\b"),
    ("setup", r"\b(?:set ?up|install\w*)\b"),
)

ACME = World(
    products=PRODUCTS,
    knowledge=KNOWLEDGE,
    topics=TOPICS,
    topic_overrides=(("reset", r"\bpassword", "password"),),
    invented_features=INVENTED_FEATURES,
    inventions=INVENTIONS,
)
