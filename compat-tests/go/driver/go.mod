module kcompat/driver

go 1.26.0
