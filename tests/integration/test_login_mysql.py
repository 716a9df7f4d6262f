"""Logins through ringgate with users in a private MariaDB (storeenv.py):
test_login_pgsql.py's cases (passwords, nologin, a proxied user, two rows,
hostile names, an outage) through `driver = mysql` (libmariadb's
non-blocking API); the evidence for hostile names is MariaDB's general query
log, where mysql_real_escape_string's backslash escapes show. One MariaDB and
one ringgate pair for the file (~30 s)."""
import unittest

import storeenv
import test_login_pgsql


@unittest.skipUnless(storeenv.available("mysql"), "MariaDB server not installed")
class MysqlLoginTest(test_login_pgsql.PgsqlLoginTest):
    STORE = storeenv.MariaDB
    DRIVER = "mysql"
    NAME_TYPE = "varchar(400)"
    ESCAPED = {"' or 1=1 --": r"'\' or 1=1 --'", "alice' --": r"'alice\' --'"}
    VALUE = "WHERE username = %s"
    STATEMENT = r"Query\t(SELECT username AS user.*)"
    LITERAL = r"WHERE username = '([^'\\]|\\.)*'$"


if __name__ == "__main__":
    unittest.main()
