# cmake -P mode: turns migrations/NNNN_name.sql into a C array compiled into the binary.
# Inputs: SQL_DIR (folder of .sql files), OUT (generated .c file).
# The array always ends with a {0, 0, 0} sentinel: a zero-length array is not C11, and a build
# with no migration yet must still compile. db_migration_count does not count the sentinel.
# NNNN must be > 0 (user_version 0 is an empty database) and unique; both are checked here so
# a clash fails the build, not the first start.
file(GLOB _files RELATIVE "${SQL_DIR}" "${SQL_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT _files)
set(_c "/* Generated from the migrations folder (NNNN_name.sql) by cmake/EmbedSql.cmake; do not edit. */\n")
string(APPEND _c "#include \"db/migrations.h\"\n\nconst struct db_migration db_migrations[] = {\n")
set(_n 0)
set(_prev 0)
foreach(_f IN LISTS _files)
    string(REGEX MATCH "^[0-9]+" _num "${_f}")
    # Strip leading zeros: math(EXPR) would read "0010" as octal on some CMake versions.
    string(REGEX REPLACE "^0+" "" _num "${_num}")
    if(_num STREQUAL "")
        message(FATAL_ERROR "EmbedSql: ${_f}: migration numbers start at 0001")
    endif()
    math(EXPR _ver "${_num}")
    if(NOT _ver GREATER _prev)
        message(FATAL_ERROR "EmbedSql: ${_f}: migration number ${_ver} is used twice")
    endif()
    set(_prev ${_ver})
    file(READ "${SQL_DIR}/${_f}" _sql HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," _bytes "${_sql}")
    string(REPLACE "\\" "\\\\" _name "${_f}")
    string(REPLACE "\"" "\\\"" _name "${_name}")
    string(APPEND _c "    {${_ver}, \"${_name}\", (const char[]){${_bytes} 0}},\n")
    math(EXPR _n "${_n} + 1")
endforeach()
string(APPEND _c "    {0, 0, 0}, /* sentinel */\n")
string(APPEND _c "};\nconst int db_migration_count = ${_n};\n")
file(WRITE "${OUT}.tmp" "${_c}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
